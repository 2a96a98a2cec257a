; Tags for C (aider repomap conventions + our import / parent / context captures).
; C++ inherits this file (``; inherits: c`` in cpp.scm).

(function_definition declarator: [
  (function_declarator declarator: (identifier) @name.definition.function)
  (pointer_declarator declarator: (function_declarator declarator: (identifier) @name.definition.function))
  (pointer_declarator declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name.definition.function)))
]) @definition.function
; Prototypes (headers).
(translation_unit (declaration declarator: [
  (function_declarator declarator: (identifier) @name.definition.function)
  (pointer_declarator declarator: (function_declarator declarator: (identifier) @name.definition.function))
]) @definition.function)
(struct_specifier name: (type_identifier) @name.definition.struct body: (field_declaration_list)) @definition.struct
(union_specifier name: (type_identifier) @name.definition.struct body: (field_declaration_list)) @definition.struct
(enum_specifier name: (type_identifier) @name.definition.enum body: (enumerator_list)) @definition.enum
(type_definition declarator: (type_identifier) @name.definition.type) @definition.type
(field_declaration declarator: [(field_identifier) @name.definition.field
  (pointer_declarator declarator: (field_identifier) @name.definition.field)
  (array_declarator declarator: (field_identifier) @name.definition.field)]) @definition.field
(preproc_def name: (identifier) @name.definition.macro) @definition.macro
(preproc_function_def name: (identifier) @name.definition.macro) @definition.macro

(preproc_include path: [(string_literal) (system_lib_string)] @import.module) @import

; == references and context ==

(call_expression function: [(identifier) @name.reference.call
                            (field_expression field: (field_identifier) @name.reference.call)])
(field_expression field: (field_identifier) @name.reference.attribute)
(type_identifier) @name.reference.type

(identifier) @context.identifier
(field_identifier) @context.identifier
(type_identifier) @context.type
(string_literal) @context.string
(field_declaration) @context.field
