; Tags for PHP (aider repomap conventions + our import / parent / context captures).

(class_declaration name: (name) @name.definition.class) @definition.class
(interface_declaration name: (name) @name.definition.interface) @definition.interface
(trait_declaration name: (name) @name.definition.trait) @definition.trait
(enum_declaration name: (name) @name.definition.enum) @definition.enum
(function_definition name: (name) @name.definition.function) @definition.function
(method_declaration name: (name) @name.definition.method) @definition.method
(property_declaration (property_element name: (variable_name (name) @name.definition.field))) @definition.field
(const_declaration (const_element (name) @name.definition.constant)) @definition.constant

; use A\B\C -> module "A\B", names ["C"].
(namespace_use_declaration (namespace_use_clause [
  (qualified_name prefix: (namespace_name) @import.module (name) @import.name)
  (name) @import.module] !alias)) @import
(namespace_use_declaration (namespace_use_clause [
  (qualified_name prefix: (namespace_name) @import.module (name) @import.name)
  (name) @import.module] alias: (name) @import.alias)) @import
(require_expression [(_ (string_content) @import.module)
  (binary_expression right: (_ (string_content) @import.module))]) @import
(require_once_expression [(_ (string_content) @import.module)
  (binary_expression right: (_ (string_content) @import.module))]) @import
(include_expression [(_ (string_content) @import.module)
  (binary_expression right: (_ (string_content) @import.module))]) @import
(include_once_expression [(_ (string_content) @import.module)
  (binary_expression right: (_ (string_content) @import.module))]) @import

(class_declaration name: (name) @parent.child (base_clause [(name) (qualified_name)] @parent.name))
(class_declaration name: (name) @parent.child (class_interface_clause [(name) (qualified_name)] @parent.name))
(interface_declaration name: (name) @parent.child (base_clause [(name) (qualified_name)] @parent.name))
(class_declaration name: (name) @parent.child body: (declaration_list (use_declaration [(name) (qualified_name)] @parent.name)))

; == references and context ==

(function_call_expression function: [(name) (qualified_name)] @name.reference.call)
(member_call_expression name: (name) @name.reference.call)
(scoped_call_expression name: (name) @name.reference.call)
(object_creation_expression [(name) (qualified_name)] @name.reference.class)
(member_access_expression name: (name) @name.reference.attribute)
(named_type [(name) (qualified_name)] @name.reference.type)

(name) @context.identifier
(named_type) @context.type
[(string) (encapsed_string)] @context.string
(property_declaration) @context.field
