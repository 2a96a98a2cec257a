; Tags for C# (aider repomap conventions + our import / parent / context captures).

(class_declaration name: (identifier) @name.definition.class) @definition.class
(record_declaration name: (identifier) @name.definition.class) @definition.class
(struct_declaration name: (identifier) @name.definition.struct) @definition.struct
(interface_declaration name: (identifier) @name.definition.interface) @definition.interface
(enum_declaration name: (identifier) @name.definition.enum) @definition.enum
(namespace_declaration name: [(identifier) (qualified_name)] @name.definition.namespace) @definition.namespace
(method_declaration name: (identifier) @name.definition.method) @definition.method
(constructor_declaration name: (identifier) @name.definition.method) @definition.method
(local_function_statement name: (identifier) @name.definition.function) @definition.function
(property_declaration name: (identifier) @name.definition.field) @definition.field
(field_declaration (variable_declaration (variable_declarator name: (identifier) @name.definition.field))) @definition.field
(delegate_declaration name: (identifier) @name.definition.type) @definition.type

(using_directive !name [(identifier) (qualified_name)] @import.module) @import
(using_directive name: (identifier) @import.alias [(identifier) (qualified_name)] @import.module) @import

(class_declaration name: (identifier) @parent.child
  (base_list [(identifier) (qualified_name) (generic_name)] @parent.name))
(struct_declaration name: (identifier) @parent.child
  (base_list [(identifier) (qualified_name) (generic_name)] @parent.name))
(interface_declaration name: (identifier) @parent.child
  (base_list [(identifier) (qualified_name) (generic_name)] @parent.name))
(record_declaration name: (identifier) @parent.child
  (base_list [(identifier) (qualified_name) (generic_name)] @parent.name))

; == references and context ==

(invocation_expression function: [(identifier) @name.reference.call
  (member_access_expression name: (identifier) @name.reference.call)])
(object_creation_expression type: [(identifier) @name.reference.class
  (generic_name (identifier) @name.reference.class)])
(member_access_expression name: (identifier) @name.reference.attribute)
(base_list (identifier) @name.reference.type)

(identifier) @context.identifier
(base_list (identifier) @context.type)
(parameter type: (identifier) @context.type)
(string_literal) @context.string
[(field_declaration) (property_declaration)] @context.field
