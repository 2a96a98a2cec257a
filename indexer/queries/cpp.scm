; inherits: c
; Tags for C++: C's, plus classes, namespaces, methods defined out of their class.

(class_specifier name: (type_identifier) @name.definition.class body: (field_declaration_list)) @definition.class
(struct_specifier name: (type_identifier) @name.definition.struct body: (field_declaration_list)) @definition.struct
(namespace_definition name: [(namespace_identifier) (nested_namespace_specifier)] @name.definition.namespace) @definition.namespace
; Inline member functions and member declarations.
(function_definition declarator: (function_declarator declarator: [(field_identifier) (destructor_name) (operator_name)] @name.definition.function)) @definition.function
(field_declaration declarator: (function_declarator declarator: [(field_identifier) (destructor_name) (operator_name)] @name.definition.method)) @definition.method
; Circle::area() { ... }: the scope is the owner.
(function_definition declarator: [
  (function_declarator declarator: (qualified_identifier scope: (_) @receiver name: [(identifier) (destructor_name) (operator_name)] @name.definition.method))
  (pointer_declarator declarator: (function_declarator declarator: (qualified_identifier scope: (_) @receiver name: (identifier) @name.definition.method)))
  (reference_declarator (function_declarator declarator: (qualified_identifier scope: (_) @receiver name: (identifier) @name.definition.method)))
]) @definition.method
(alias_declaration name: (type_identifier) @name.definition.type) @definition.type

(using_declaration [(identifier) (qualified_identifier)] @import.module) @import

(class_specifier name: (type_identifier) @parent.child
  (base_class_clause [(type_identifier) (qualified_identifier) (template_type)] @parent.name))
(struct_specifier name: (type_identifier) @parent.child
  (base_class_clause [(type_identifier) (qualified_identifier) (template_type)] @parent.name))

; == references and context ==

(call_expression function: (qualified_identifier name: (identifier) @name.reference.call))
(call_expression function: (template_function name: (identifier) @name.reference.call))
(new_expression type: (type_identifier) @name.reference.class)
(namespace_identifier) @context.identifier
